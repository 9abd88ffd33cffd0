"""Dutch system messages."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "Een ogenblik geduld, we verbinden u met een medewerker.",
    "queuePositionMessage": "U bent nummer {position} in de wachtrij.",
    "estimatedWaitMessage": (
        "U bent nummer {position} in de wachtrij. De geschatte wachttijd is ongeveer {minutes} min."
    ),
    "agentJoinedMessage": "{agent} neemt nu deel aan de chat.",
    "agentJoinedUnnamedMessage": "Een medewerker neemt nu deel aan de chat.",
    "endChatFromUserInstruction": (
        'U kunt op elk moment "{keyword}" typen om de chat met de medewerker te beëindigen.'
    ),
    "conversationClosedMessage": (
        "De medewerker heeft de chat beëindigd. U bent weer in gesprek met de virtuele assistent."
    ),
    "userEndedMessage": (
        "U hebt de chat met de medewerker beëindigd. U bent weer in gesprek met de virtuele "
        "assistent."
    ),
    "handoffCancelledMessage": (
        "U hebt het verzoek om een medewerker geannuleerd. "
        "U bent weer in gesprek met de virtuele assistent."
    ),
    "agentTransferredMessage": "U wordt doorverbonden met {agent}.",
    "agentTransferredUnnamedMessage": "U wordt doorverbonden met een andere medewerker.",
    "noAgentAvailableMessage": (
        "Helaas is er op dit moment geen medewerker beschikbaar. "
        "U bent weer in gesprek met de virtuele assistent."
    ),
    "queueTimeoutMessage": (
        "Helaas kon geen medewerker de chat op tijd aannemen. "
        "U bent weer in gesprek met de virtuele assistent."
    ),
    "transferFailedMessage": (
        "Helaas konden we u niet met een medewerker verbinden. "
        "U bent weer in gesprek met de virtuele assistent."
    ),
    "agentConnectionLostMessage": (
        "De verbinding met de medewerker is verbroken. "
        "U bent weer in gesprek met de virtuele assistent."
    ),
    "idleTimeoutMessage": "De chat met de medewerker is gesloten wegens inactiviteit.",
    "botErrorMessage": "Sorry, er is bij ons iets misgegaan. Probeer het opnieuw.",
    "botTransferMessage": "Een moment, ik verbind u door met een andere assistent.",
}
