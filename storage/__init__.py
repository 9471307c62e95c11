"""The user's files: reading data files (lens, experiment, session) as one clear error each,
writing JSON and files atomically, and sessions."""
