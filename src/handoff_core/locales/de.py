"""German system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": (
        "Bitte warten Sie einen Moment, wir verbinden Sie mit einem Mitarbeiter."
    ),
    "queuePositionMessage": "Sie sind an Position {position} in der Warteschlange.",
    "estimatedWaitMessage": (
        "Sie sind an Position {position} in der Warteschlange. "
        "Die geschätzte Wartezeit beträgt etwa {minutes} Min."
    ),
    "agentJoinedMessage": "{agent} ist dem Chat beigetreten.",
    "agentJoinedUnnamedMessage": "Ein Mitarbeiter ist dem Chat beigetreten.",
    "endChatFromUserInstruction": (
        "Sie können jederzeit „{keyword}“ eingeben, um den Chat mit dem Mitarbeiter zu beenden."
    ),
    "conversationClosedMessage": (
        "Der Mitarbeiter hat den Chat beendet. Sie sind wieder mit dem virtuellen Assistenten "
        "verbunden."
    ),
    "userEndedMessage": (
        "Sie haben den Chat mit dem Mitarbeiter beendet. "
        "Sie sind wieder mit dem virtuellen Assistenten verbunden."
    ),
    "handoffCancelledMessage": (
        "Sie haben die Anfrage nach einem Mitarbeiter abgebrochen. "
        "Sie sind wieder mit dem virtuellen Assistenten verbunden."
    ),
    "agentTransferredMessage": "Sie werden an {agent} weitergeleitet.",
    "agentTransferredUnnamedMessage": "Sie werden an einen anderen Mitarbeiter weitergeleitet.",
    "noAgentAvailableMessage": (
        "Leider ist derzeit kein Mitarbeiter verfügbar. "
        "Sie sind wieder mit dem virtuellen Assistenten verbunden."
    ),
    "queueTimeoutMessage": (
        "Leider konnte kein Mitarbeiter den Chat rechtzeitig übernehmen. "
        "Sie sind wieder mit dem virtuellen Assistenten verbunden."
    ),
    "transferFailedMessage": (
        "Leider konnten wir Sie nicht mit einem Mitarbeiter verbinden. "
        "Sie sind wieder mit dem virtuellen Assistenten verbunden."
    ),
    "agentConnectionLostMessage": (
        "Die Verbindung zum Mitarbeiter wurde unterbrochen. "
        "Sie sind wieder mit dem virtuellen Assistenten verbunden."
    ),
    "idleTimeoutMessage": "Der Chat mit dem Mitarbeiter wurde wegen Inaktivität beendet.",
    "botErrorMessage": "Leider ist bei uns ein Fehler aufgetreten. Bitte versuchen Sie es erneut.",
    "botTransferMessage": "Einen Moment bitte, ich leite Sie an einen anderen Assistenten weiter.",
}
