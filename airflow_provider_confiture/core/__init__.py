"""Pure migration logic on plain DB-API connections (psycopg2 or psycopg 3). No Airflow imports here."""
