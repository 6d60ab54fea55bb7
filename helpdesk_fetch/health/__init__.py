"""What operators watch: status."""
