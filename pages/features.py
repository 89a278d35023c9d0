import streamlit as st

st.title("features")
st.info("This page is being built.")
