# stand-in: the project's src/ is not part of this corpus
