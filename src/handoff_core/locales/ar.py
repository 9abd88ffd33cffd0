"""Arabic system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "يرجى الانتظار بينما نقوم بتوصيلك بأحد الموظفين.",
    "queuePositionMessage": "ترتيبك في قائمة الانتظار هو {position}.",
    "estimatedWaitMessage": (
        "ترتيبك في قائمة الانتظار هو {position}. مدة الانتظار المتوقعة حوالي {minutes} دقيقة."
    ),
    "agentJoinedMessage": "انضم {agent} إلى المحادثة.",
    "agentJoinedUnnamedMessage": "انضم أحد الموظفين إلى المحادثة.",
    "endChatFromUserInstruction": 'يمكنك كتابة "{keyword}" في أي وقت لإنهاء المحادثة مع الموظف.',
    "conversationClosedMessage": "أنهى الموظف المحادثة. عدت الآن إلى المساعد الافتراضي.",
    "userEndedMessage": "لقد أنهيت المحادثة مع الموظف. عدت الآن إلى المساعد الافتراضي.",
    "handoffCancelledMessage": (
        "لقد ألغيت طلب التحدث إلى أحد الموظفين. عدت الآن إلى المساعد الافتراضي."
    ),
    "agentTransferredMessage": "جارٍ تحويلك إلى {agent}.",
    "agentTransferredUnnamedMessage": "جارٍ تحويلك إلى موظف آخر.",
    "noAgentAvailableMessage": "عذرًا، لا يوجد موظف متاح حاليًا. عدت الآن إلى المساعد الافتراضي.",
    "queueTimeoutMessage": (
        "عذرًا، لم يتمكن أي موظف من تولي المحادثة في الوقت المحدد. عدت الآن إلى المساعد الافتراضي."
    ),
    "transferFailedMessage": (
        "عذرًا، لم نتمكن من توصيلك بأحد الموظفين. عدت الآن إلى المساعد الافتراضي."
    ),
    "agentConnectionLostMessage": "انقطع الاتصال بالموظف. عدت الآن إلى المساعد الافتراضي.",
    "idleTimeoutMessage": "أُغلقت المحادثة مع الموظف بسبب عدم النشاط.",
    "botErrorMessage": "عذرًا، حدث خطأ من جانبنا. يرجى المحاولة مرة أخرى.",
    "botTransferMessage": "لحظة من فضلك، سأحوّلك إلى مساعد آخر.",
}
