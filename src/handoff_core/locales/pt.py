"""Portuguese system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "Aguarde um momento enquanto conectamos você a um atendente.",
    "queuePositionMessage": "A sua posição na fila é {position}.",
    "estimatedWaitMessage": (
        "A sua posição na fila é {position}. O tempo de espera estimado é de cerca de {minutes} "
        "min."
    ),
    "agentJoinedMessage": "{agent} entrou na conversa.",
    "agentJoinedUnnamedMessage": "Um atendente entrou na conversa.",
    "endChatFromUserInstruction": (
        'Pode digitar "{keyword}" a qualquer momento para encerrar a conversa com o atendente.'
    ),
    "conversationClosedMessage": (
        "O atendente encerrou a conversa. A conversa voltou para o assistente virtual."
    ),
    "userEndedMessage": (
        "Você encerrou a conversa com o atendente. A conversa voltou para o assistente virtual."
    ),
    "handoffCancelledMessage": (
        "Você cancelou o pedido de atendimento por um atendente. "
        "A conversa voltou para o assistente virtual."
    ),
    "agentTransferredMessage": "A conversa está sendo transferida para {agent}.",
    "agentTransferredUnnamedMessage": "A conversa está sendo transferida para outro atendente.",
    "noAgentAvailableMessage": (
        "Desculpe, não há atendentes disponíveis no momento. "
        "A conversa voltou para o assistente virtual."
    ),
    "queueTimeoutMessage": (
        "Desculpe, nenhum atendente pôde assumir a conversa a tempo. "
        "A conversa voltou para o assistente virtual."
    ),
    "transferFailedMessage": (
        "Desculpe, não foi possível conectar você a um atendente. "
        "A conversa voltou para o assistente virtual."
    ),
    "agentConnectionLostMessage": (
        "A conexão com o atendente foi perdida. A conversa voltou para o assistente virtual."
    ),
    "idleTimeoutMessage": "A conversa com o atendente foi encerrada por inatividade.",
    "botErrorMessage": "Desculpe, ocorreu um erro do nosso lado. Tente novamente.",
    "botTransferMessage": "Um momento, vou transferir você para outro assistente.",
}
