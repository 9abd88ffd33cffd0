"""Polish system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "Prosimy o chwilę cierpliwości, trwa łączenie z konsultantem.",
    "queuePositionMessage": "Twoje miejsce w kolejce: {position}.",
    "estimatedWaitMessage": (
        "Twoje miejsce w kolejce: {position}. Szacowany czas oczekiwania to około {minutes} min."
    ),
    "agentJoinedMessage": "{agent} dołącza do czatu.",
    "agentJoinedUnnamedMessage": "Konsultant dołączył do czatu.",
    "endChatFromUserInstruction": (
        "W każdej chwili możesz wpisać „{keyword}”, aby zakończyć czat z konsultantem."
    ),
    "conversationClosedMessage": (
        "Konsultant zakończył czat. Ponownie rozmawiasz z wirtualnym asystentem."
    ),
    "userEndedMessage": (
        "Zakończono czat z konsultantem. Ponownie rozmawiasz z wirtualnym asystentem."
    ),
    "handoffCancelledMessage": (
        "Anulowano prośbę o połączenie z konsultantem. Ponownie rozmawiasz z wirtualnym asystentem."
    ),
    "agentTransferredMessage": "Trwa przekazywanie rozmowy do: {agent}.",
    "agentTransferredUnnamedMessage": "Trwa przekazywanie rozmowy do innego konsultanta.",
    "noAgentAvailableMessage": (
        "Przepraszamy, obecnie żaden konsultant nie jest dostępny. "
        "Ponownie rozmawiasz z wirtualnym asystentem."
    ),
    "queueTimeoutMessage": (
        "Przepraszamy, żaden konsultant nie mógł przyjąć czatu na czas. "
        "Ponownie rozmawiasz z wirtualnym asystentem."
    ),
    "transferFailedMessage": (
        "Przepraszamy, nie udało się połączyć Cię z konsultantem. "
        "Ponownie rozmawiasz z wirtualnym asystentem."
    ),
    "agentConnectionLostMessage": (
        "Połączenie z konsultantem zostało przerwane. Ponownie rozmawiasz z wirtualnym asystentem."
    ),
    "idleTimeoutMessage": "Czat z konsultantem został zamknięty z powodu braku aktywności.",
    "botErrorMessage": "Przepraszamy, wystąpił błąd po naszej stronie. Spróbuj ponownie.",
    "botTransferMessage": "Chwileczkę, przekazuję Cię do innego asystenta.",
}
