"""Japanese system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "担当者におつなぎしますので、少々お待ちください。",
    "queuePositionMessage": "お客様の順番は{position}番目です。",
    "estimatedWaitMessage": "お客様の順番は{position}番目です。推定待ち時間は約{minutes}分です。",
    "agentJoinedMessage": "{agent}がチャットに参加しました。",
    "agentJoinedUnnamedMessage": "担当者がチャットに参加しました。",
    "endChatFromUserInstruction": (
        "「{keyword}」と入力すると、いつでも担当者とのチャットを終了できます。"
    ),
    "conversationClosedMessage": (
        "担当者がチャットを終了しました。バーチャルアシスタントとの会話に戻ります。"
    ),
    "userEndedMessage": (
        "担当者とのチャットを終了しました。バーチャルアシスタントとの会話に戻ります。"
    ),
    "handoffCancelledMessage": (
        "担当者への接続リクエストをキャンセルしました。バーチャルアシスタントとの会話に戻ります。"
    ),
    "agentTransferredMessage": "{agent}におつなぎしています。",
    "agentTransferredUnnamedMessage": "別の担当者におつなぎしています。",
    "noAgentAvailableMessage": (
        "申し訳ございません。現在対応できる担当者がおりません。"
        "バーチャルアシスタントとの会話に戻ります。"
    ),
    "queueTimeoutMessage": (
        "申し訳ございません。時間内に対応できる担当者がおりませんでした。"
        "バーチャルアシスタントとの会話に戻ります。"
    ),
    "transferFailedMessage": (
        "申し訳ございません。担当者におつなぎできませんでした。"
        "バーチャルアシスタントとの会話に戻ります。"
    ),
    "agentConnectionLostMessage": (
        "担当者との接続が切断されました。バーチャルアシスタントとの会話に戻ります。"
    ),
    "idleTimeoutMessage": "一定時間操作がなかったため、担当者とのチャットを終了しました。",
    "botErrorMessage": "申し訳ございません。システムで問題が発生しました。もう一度お試しください。",
    "botTransferMessage": "少々お待ちください。別のアシスタントにおつなぎします。",
}
