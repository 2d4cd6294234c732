"""Workflows as endpoints: named graphs with typed parameters, for apps, the page, the contract and the client."""
