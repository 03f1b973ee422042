"""The live terminal app: ``translator run`` (captions, translation, speech) and ``translator devices``."""
