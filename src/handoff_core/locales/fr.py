"""French system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": (
        "Veuillez patienter pendant que nous vous mettons en relation avec un conseiller."
    ),
    "queuePositionMessage": "Vous êtes en position {position} dans la file d'attente.",
    "estimatedWaitMessage": (
        "Vous êtes en position {position} dans la file d'attente. "
        "Le temps d'attente estimé est d'environ {minutes} min."
    ),
    "agentJoinedMessage": "{agent} a rejoint la conversation.",
    "agentJoinedUnnamedMessage": "Un conseiller a rejoint la conversation.",
    "endChatFromUserInstruction": (
        "Vous pouvez saisir « {keyword} » à tout moment pour mettre fin à la conversation avec le "
        "conseiller."
    ),
    "conversationClosedMessage": (
        "Le conseiller a mis fin à la conversation. Vous êtes de nouveau avec l'assistant virtuel."
    ),
    "userEndedMessage": (
        "Vous avez mis fin à la conversation avec le conseiller. "
        "Vous êtes de nouveau avec l'assistant virtuel."
    ),
    "handoffCancelledMessage": (
        "Vous avez annulé la demande de mise en relation avec un conseiller. "
        "Vous êtes de nouveau avec l'assistant virtuel."
    ),
    "agentTransferredMessage": "Nous vous transférons vers {agent}.",
    "agentTransferredUnnamedMessage": "Nous vous transférons vers un autre conseiller.",
    "noAgentAvailableMessage": (
        "Nous sommes désolés, aucun conseiller n'est disponible pour le moment. "
        "Vous êtes de nouveau avec l'assistant virtuel."
    ),
    "queueTimeoutMessage": (
        "Nous sommes désolés, aucun conseiller n'a pu prendre la conversation à temps. "
        "Vous êtes de nouveau avec l'assistant virtuel."
    ),
    "transferFailedMessage": (
        "Nous sommes désolés, nous n'avons pas pu vous mettre en relation avec un conseiller. "
        "Vous êtes de nouveau avec l'assistant virtuel."
    ),
    "agentConnectionLostMessage": (
        "La connexion avec le conseiller a été perdue. "
        "Vous êtes de nouveau avec l'assistant virtuel."
    ),
    "idleTimeoutMessage": (
        "La conversation avec le conseiller a été fermée pour cause d'inactivité."
    ),
    "botErrorMessage": (
        "Nous sommes désolés, un problème est survenu de notre côté. Veuillez réessayer."
    ),
    "botTransferMessage": "Un instant, je vous transfère vers un autre assistant.",
}
