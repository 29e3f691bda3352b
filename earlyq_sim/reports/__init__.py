"""Reports: tables, plots and PDF."""
