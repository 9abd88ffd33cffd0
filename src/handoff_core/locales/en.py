"""English system messages: the reference catalog every other language follows key by key."""

MESSAGES: dict[str, str] = {
    "lookingForAgentMessage": "Please wait while we connect you to an agent.",
    "queuePositionMessage": "You are number {position} in the queue.",
    "estimatedWaitMessage": (
        "You are number {position} in the queue. The estimated wait is about {minutes} min."
    ),
    "agentJoinedMessage": "{agent} has joined the chat.",
    "agentJoinedUnnamedMessage": "An agent has joined the chat.",
    "endChatFromUserInstruction": (
        'You can type "{keyword}" at any time to end the chat with the agent.'
    ),
    "conversationClosedMessage": (
        "The agent has ended the chat. You are back with the virtual assistant."
    ),
    "userEndedMessage": (
        "You have ended the chat with the agent. You are back with the virtual assistant."
    ),
    "handoffCancelledMessage": (
        "You cancelled the request for an agent. You are back with the virtual assistant."
    ),
    "agentTransferredMessage": "You are being transferred to {agent}.",
    "agentTransferredUnnamedMessage": "You are being transferred to another agent.",
    "noAgentAvailableMessage": (
        "Sorry, no agent is available right now. You are back with the virtual assistant."
    ),
    "queueTimeoutMessage": (
        "Sorry, no agent could take the chat in time. You are back with the virtual assistant."
    ),
    "transferFailedMessage": (
        "Sorry, we could not connect you to an agent. You are back with the virtual assistant."
    ),
    "agentConnectionLostMessage": (
        "The connection to the agent was lost. You are back with the virtual assistant."
    ),
    "idleTimeoutMessage": "The chat with the agent was closed because of inactivity.",
    "botErrorMessage": "Sorry, something went wrong on our side. Please try again.",
    "botTransferMessage": "One moment, I am passing you to another assistant.",
}
