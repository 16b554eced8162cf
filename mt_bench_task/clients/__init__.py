"""Judge clients behind `core.chat.ChatClient`: an OpenAI-compatible endpoint, the local judge."""
