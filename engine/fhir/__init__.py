"""FHIR R4 REST API and the mapping between engine state and FHIR resources."""
