"""What the cluster shares: station takeover, HTTP broadcasts relayed to every node, and the
Redis connection that publishes for both."""
