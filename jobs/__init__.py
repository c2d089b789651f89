"""Send jobs: what they are, how they are validated, and how producers enqueue them."""
