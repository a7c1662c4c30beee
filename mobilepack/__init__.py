"""The front door: the click CLI and the train -> convert -> bench pipeline."""
