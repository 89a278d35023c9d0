"""What the pages share, one file per idea. Kept out of pages/ itself, where Streamlit
would take every .py file for a page of its own."""
