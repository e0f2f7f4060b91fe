"""The Discord front end: slash commands that page through images for a whole channel."""
