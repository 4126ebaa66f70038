"""Notifications: an outbox in the database, sent by email, Telegram and in-app, with retries."""
