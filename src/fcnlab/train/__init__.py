"""Training: losses and schedules."""
