"""``neurocaas web``: a page on 127.0.0.1 for the people who analyse data, on the CLI's client layer."""
