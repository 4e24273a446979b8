"""The features service: clean records -> feature rows -> Feast (online and offline) -> features.updated."""
