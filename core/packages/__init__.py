"""What is installed in an image, read from its package databases without pulling it."""
