"""What every trained method shares: the agent interface and the trainer that runs any agent."""
