"""Spanish system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "Espere un momento mientras le ponemos en contacto con un agente.",
    "queuePositionMessage": "Ocupa el puesto {position} en la cola.",
    "estimatedWaitMessage": (
        "Ocupa el puesto {position} en la cola. El tiempo de espera estimado es de unos {minutes} "
        "min."
    ),
    "agentJoinedMessage": "{agent} se ha unido al chat.",
    "agentJoinedUnnamedMessage": "Un agente se ha unido al chat.",
    "endChatFromUserInstruction": (
        "Puede escribir «{keyword}» en cualquier momento para finalizar el chat con el agente."
    ),
    "conversationClosedMessage": (
        "El agente ha finalizado el chat. Vuelve a estar con el asistente virtual."
    ),
    "userEndedMessage": (
        "Ha finalizado el chat con el agente. Vuelve a estar con el asistente virtual."
    ),
    "handoffCancelledMessage": (
        "Ha cancelado la solicitud de un agente. Vuelve a estar con el asistente virtual."
    ),
    "agentTransferredMessage": "Le estamos transfiriendo a {agent}.",
    "agentTransferredUnnamedMessage": "Le estamos transfiriendo a otro agente.",
    "noAgentAvailableMessage": (
        "Lo sentimos, ahora mismo no hay ningún agente disponible. "
        "Vuelve a estar con el asistente virtual."
    ),
    "queueTimeoutMessage": (
        "Lo sentimos, ningún agente ha podido atender el chat a tiempo. "
        "Vuelve a estar con el asistente virtual."
    ),
    "transferFailedMessage": (
        "Lo sentimos, no hemos podido ponerle en contacto con un agente. "
        "Vuelve a estar con el asistente virtual."
    ),
    "agentConnectionLostMessage": (
        "Se ha perdido la conexión con el agente. Vuelve a estar con el asistente virtual."
    ),
    "idleTimeoutMessage": "El chat con el agente se ha cerrado por inactividad.",
    "botErrorMessage": (
        "Lo sentimos, se ha producido un error por nuestra parte. Inténtelo de nuevo."
    ),
    "botTransferMessage": "Un momento, le paso con otro asistente.",
}
