"""Korean system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "상담원과 연결해 드리는 중입니다. 잠시만 기다려 주세요.",
    "queuePositionMessage": "현재 대기 순서는 {position}번째입니다.",
    "estimatedWaitMessage": (
        "현재 대기 순서는 {position}번째입니다. 예상 대기 시간은 약 {minutes}분입니다."
    ),
    "agentJoinedMessage": "{agent} 님이 채팅에 참여했습니다.",
    "agentJoinedUnnamedMessage": "상담원이 채팅에 참여했습니다.",
    "endChatFromUserInstruction": (
        '언제든지 "{keyword}"을(를) 입력하시면 상담원과의 채팅을 종료할 수 있습니다.'
    ),
    "conversationClosedMessage": (
        "상담원이 채팅을 종료했습니다. 다시 가상 어시스턴트와 연결되었습니다."
    ),
    "userEndedMessage": "상담원과의 채팅을 종료하셨습니다. 다시 가상 어시스턴트와 연결되었습니다.",
    "handoffCancelledMessage": (
        "상담원 연결 요청을 취소하셨습니다. 다시 가상 어시스턴트와 연결되었습니다."
    ),
    "agentTransferredMessage": "{agent} 님께 연결해 드리는 중입니다.",
    "agentTransferredUnnamedMessage": "다른 상담원에게 연결해 드리는 중입니다.",
    "noAgentAvailableMessage": (
        "죄송합니다. 지금은 연결 가능한 상담원이 없습니다. 다시 가상 어시스턴트와 연결되었습니다."
    ),
    "queueTimeoutMessage": (
        "죄송합니다. 제한 시간 내에 채팅을 받을 수 있는 상담원이 없었습니다. "
        "다시 가상 어시스턴트와 연결되었습니다."
    ),
    "transferFailedMessage": (
        "죄송합니다. 상담원과 연결하지 못했습니다. 다시 가상 어시스턴트와 연결되었습니다."
    ),
    "agentConnectionLostMessage": (
        "상담원과의 연결이 끊어졌습니다. 다시 가상 어시스턴트와 연결되었습니다."
    ),
    "idleTimeoutMessage": "일정 시간 동안 활동이 없어 상담원과의 채팅이 종료되었습니다.",
    "botErrorMessage": "죄송합니다. 저희 쪽에 문제가 발생했습니다. 다시 시도해 주세요.",
    "botTransferMessage": "잠시만 기다려 주세요. 다른 어시스턴트에게 연결해 드리겠습니다.",
}
