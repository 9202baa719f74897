"""The turn-taking voice agent and its policies."""
