"""Turkish system messages."""

# RUF001 would flag the dotless i (U+0131), an ordinary Turkish letter.
# ruff: noqa: RUF001

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "Sizi bir temsilciye bağlarken lütfen bekleyin.",
    "queuePositionMessage": "Sıradaki konumunuz: {position}.",
    "estimatedWaitMessage": (
        "Sıradaki konumunuz: {position}. Tahmini bekleme süresi yaklaşık {minutes} dk."
    ),
    "agentJoinedMessage": "{agent} sohbete katıldı.",
    "agentJoinedUnnamedMessage": "Bir temsilci sohbete katıldı.",
    "endChatFromUserInstruction": (
        'Temsilciyle sohbeti sonlandırmak için istediğiniz zaman "{keyword}" yazabilirsiniz.'
    ),
    "conversationClosedMessage": "Temsilci sohbeti sonlandırdı. Sanal asistana geri döndünüz.",
    "userEndedMessage": "Temsilciyle sohbeti sonlandırdınız. Sanal asistana geri döndünüz.",
    "handoffCancelledMessage": "Temsilci talebinizi iptal ettiniz. Sanal asistana geri döndünüz.",
    "agentTransferredMessage": "{agent} adlı temsilciye aktarılıyorsunuz.",
    "agentTransferredUnnamedMessage": "Başka bir temsilciye aktarılıyorsunuz.",
    "noAgentAvailableMessage": (
        "Üzgünüz, şu anda müsait temsilci bulunmuyor. Sanal asistana geri döndünüz."
    ),
    "queueTimeoutMessage": (
        "Üzgünüz, hiçbir temsilci sohbeti zamanında devralamadı. Sanal asistana geri döndünüz."
    ),
    "transferFailedMessage": (
        "Üzgünüz, sizi bir temsilciye bağlayamadık. Sanal asistana geri döndünüz."
    ),
    "agentConnectionLostMessage": "Temsilciyle bağlantı koptu. Sanal asistana geri döndünüz.",
    "idleTimeoutMessage": "Uzun süre işlem yapılmadığı için temsilciyle sohbet kapatıldı.",
    "botErrorMessage": "Üzgünüz, bizim tarafımızda bir sorun oluştu. Lütfen tekrar deneyin.",
    "botTransferMessage": "Bir dakika, sizi başka bir asistana aktarıyorum.",
}
