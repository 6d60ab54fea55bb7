"""One message: raw bytes -> what the rest of the program knows of it (parsed, classified)."""
