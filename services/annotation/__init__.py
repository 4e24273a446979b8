"""The annotation service: human review of chosen predictions through Label Studio (docs/annotation.md)."""
