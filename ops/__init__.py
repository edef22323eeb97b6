"""Operations: the Nginx front, backups and the restore rehearsal, the deploy smoke test and
the admin's daily status screen. Imported by the CLI (and by the API, to regenerate the Nginx
configuration after an allow-list change); it imports `ledger` and `lake`, never `deploy/`."""
