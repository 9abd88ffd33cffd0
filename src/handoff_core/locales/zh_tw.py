"""Traditional Chinese system messages."""

# RUF001 would flag the fullwidth comma (U+FF0C), standard Chinese punctuation.
# ruff: noqa: RUF001

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "正在為您轉接專人客服，請稍候。",
    "queuePositionMessage": "您目前排在第 {position} 位。",
    "estimatedWaitMessage": "您目前排在第 {position} 位，預估等候時間約 {minutes} 分鐘。",
    "agentJoinedMessage": "{agent} 已加入對話。",
    "agentJoinedUnnamedMessage": "客服人員已加入對話。",
    "endChatFromUserInstruction": "您隨時可以輸入「{keyword}」結束與客服人員的對話。",
    "conversationClosedMessage": "客服人員已結束對話。您已回到虛擬助理。",
    "userEndedMessage": "您已結束與客服人員的對話。您已回到虛擬助理。",
    "handoffCancelledMessage": "您已取消轉接客服人員的要求。您已回到虛擬助理。",
    "agentTransferredMessage": "正在為您轉接給 {agent}。",
    "agentTransferredUnnamedMessage": "正在為您轉接給其他客服人員。",
    "noAgentAvailableMessage": "很抱歉，目前沒有可為您服務的客服人員。您已回到虛擬助理。",
    "queueTimeoutMessage": "很抱歉，沒有客服人員能及時接手對話。您已回到虛擬助理。",
    "transferFailedMessage": "很抱歉，無法為您接通客服人員。您已回到虛擬助理。",
    "agentConnectionLostMessage": "與客服人員的連線已中斷。您已回到虛擬助理。",
    "idleTimeoutMessage": "由於閒置時間過長，與客服人員的對話已關閉。",
    "botErrorMessage": "很抱歉，我們這邊發生問題，請再試一次。",
    "botTransferMessage": "請稍候，正在為您轉接其他助理。",
}
