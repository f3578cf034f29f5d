"""The gate's decision: from a payload to granted or denied with its reason (`policy`)."""
