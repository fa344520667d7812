"""The accountant's exports: the journal (CSV), a beancount file and the FEC."""
