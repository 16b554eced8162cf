"""The tests' fakes and helpers: local servers that model the real providers, and shared data dirs."""
