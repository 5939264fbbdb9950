"""What VoxDesk keeps on disk: settings, history, paths, secrets and model files."""
