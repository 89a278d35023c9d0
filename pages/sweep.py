import streamlit as st

st.title("sweep")
st.info("This page is being built.")
