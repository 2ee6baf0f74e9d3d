"""The studio: a local page where a user sees what a run gets wrong, fixes the data, refits from
the cached features in seconds and ships. It calls the run's one owner (``run.model.RunModel``,
``run.folder.Run``); it never answers for pixels itself."""
