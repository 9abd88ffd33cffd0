from __future__ import annotations

# Long enough for HS512 without PyJWT's short-key warning (which the suite treats as an error).
SECRET = "kore-test-secret-" + "x" * 64
