"""Italian system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "Attenda un momento mentre la mettiamo in contatto con un operatore.",
    "queuePositionMessage": "È in posizione {position} nella coda di attesa.",
    "estimatedWaitMessage": (
        "È in posizione {position} nella coda di attesa. L'attesa stimata è di circa {minutes} min."
    ),
    "agentJoinedMessage": "{agent} partecipa ora alla chat.",
    "agentJoinedUnnamedMessage": "Un operatore si è unito alla chat.",
    "endChatFromUserInstruction": (
        "Può scrivere «{keyword}» in qualsiasi momento per terminare la chat con l'operatore."
    ),
    "conversationClosedMessage": (
        "L'operatore ha terminato la chat. È di nuovo in contatto con l'assistente virtuale."
    ),
    "userEndedMessage": (
        "Ha terminato la chat con l'operatore. È di nuovo in contatto con l'assistente virtuale."
    ),
    "handoffCancelledMessage": (
        "Ha annullato la richiesta di un operatore. È di nuovo in contatto con l'assistente "
        "virtuale."
    ),
    "agentTransferredMessage": "La stiamo trasferendo a {agent}.",
    "agentTransferredUnnamedMessage": "La stiamo trasferendo a un altro operatore.",
    "noAgentAvailableMessage": (
        "Siamo spiacenti, al momento non ci sono operatori disponibili. "
        "È di nuovo in contatto con l'assistente virtuale."
    ),
    "queueTimeoutMessage": (
        "Siamo spiacenti, nessun operatore ha potuto prendere in carico la chat in tempo. "
        "È di nuovo in contatto con l'assistente virtuale."
    ),
    "transferFailedMessage": (
        "Siamo spiacenti, non è stato possibile metterla in contatto con un operatore. "
        "È di nuovo in contatto con l'assistente virtuale."
    ),
    "agentConnectionLostMessage": (
        "La connessione con l'operatore si è interrotta. "
        "È di nuovo in contatto con l'assistente virtuale."
    ),
    "idleTimeoutMessage": "La chat con l'operatore è stata chiusa per inattività.",
    "botErrorMessage": (
        "Siamo spiacenti, si è verificato un problema da parte nostra. La preghiamo di riprovare."
    ),
    "botTransferMessage": "Un momento, la passo a un altro assistente.",
}
