"""The explain service: global explanations of each champion, local explanations of predictions."""
