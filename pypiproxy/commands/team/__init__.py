"""The private tier's housekeeping commands: tokens, owners, claims, yank/unyank and remove."""
