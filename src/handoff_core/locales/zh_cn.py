"""Simplified Chinese system messages."""

# RUF001 would flag the fullwidth comma (U+FF0C), standard Chinese punctuation.
# ruff: noqa: RUF001

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "正在为您转接人工客服，请稍候。",
    "queuePositionMessage": "您当前排在第 {position} 位。",
    "estimatedWaitMessage": "您当前排在第 {position} 位，预计等待时间约为 {minutes} 分钟。",
    "agentJoinedMessage": "{agent} 已加入对话。",
    "agentJoinedUnnamedMessage": "人工客服已加入对话。",
    "endChatFromUserInstruction": "您可以随时输入“{keyword}”结束与客服的对话。",
    "conversationClosedMessage": "客服已结束对话。您已返回虚拟助手。",
    "userEndedMessage": "您已结束与客服的对话。您已返回虚拟助手。",
    "handoffCancelledMessage": "您已取消转接人工客服的请求。您已返回虚拟助手。",
    "agentTransferredMessage": "正在为您转接至 {agent}。",
    "agentTransferredUnnamedMessage": "正在为您转接至其他客服。",
    "noAgentAvailableMessage": "抱歉，目前没有可接待的客服。您已返回虚拟助手。",
    "queueTimeoutMessage": "抱歉，没有客服能及时接入对话。您已返回虚拟助手。",
    "transferFailedMessage": "抱歉，未能为您接通人工客服。您已返回虚拟助手。",
    "agentConnectionLostMessage": "与客服的连接已中断。您已返回虚拟助手。",
    "idleTimeoutMessage": "由于长时间无操作，与客服的对话已关闭。",
    "botErrorMessage": "抱歉，我们这边出现了问题，请重试。",
    "botTransferMessage": "请稍候，正在为您转接其他助手。",
}
