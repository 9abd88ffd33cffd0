"""Catalan system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "Espereu un moment mentre us connectem amb un agent.",
    "queuePositionMessage": "Sou el número {position} de la cua.",
    "estimatedWaitMessage": (
        "Sou el número {position} de la cua. El temps d'espera estimat és d'uns {minutes} min."
    ),
    "agentJoinedMessage": "{agent} s'ha unit al xat.",
    "agentJoinedUnnamedMessage": "Un agent s'ha unit al xat.",
    "endChatFromUserInstruction": (
        "Podeu escriure «{keyword}» en qualsevol moment per finalitzar el xat amb l'agent."
    ),
    "conversationClosedMessage": (
        "L'agent ha finalitzat el xat. Torneu a estar amb l'assistent virtual."
    ),
    "userEndedMessage": (
        "Heu finalitzat el xat amb l'agent. Torneu a estar amb l'assistent virtual."
    ),
    "handoffCancelledMessage": (
        "Heu cancel·lat la sol·licitud d'un agent. Torneu a estar amb l'assistent virtual."
    ),
    "agentTransferredMessage": "Us estem transferint a {agent}.",
    "agentTransferredUnnamedMessage": "Us estem transferint a un altre agent.",
    "noAgentAvailableMessage": (
        "Ho sentim, ara mateix no hi ha cap agent disponible. "
        "Torneu a estar amb l'assistent virtual."
    ),
    "queueTimeoutMessage": (
        "Ho sentim, cap agent no ha pogut atendre el xat a temps. "
        "Torneu a estar amb l'assistent virtual."
    ),
    "transferFailedMessage": (
        "Ho sentim, no us hem pogut connectar amb cap agent. "
        "Torneu a estar amb l'assistent virtual."
    ),
    "agentConnectionLostMessage": (
        "S'ha perdut la connexió amb l'agent. Torneu a estar amb l'assistent virtual."
    ),
    "idleTimeoutMessage": "El xat amb l'agent s'ha tancat per inactivitat.",
    "botErrorMessage": "Ho sentim, s'ha produït un error per part nostra. Torneu-ho a provar.",
    "botTransferMessage": "Un moment, us passo a un altre assistent.",
}
