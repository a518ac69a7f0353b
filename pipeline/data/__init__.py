"""The study's images: decoded once from their source (`sources`, `folder`) by the `prepare` stage
into tensor files that every training and evaluation stage reads (`prepared`)."""
