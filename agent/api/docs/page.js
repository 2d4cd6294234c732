// The contract page: Swagger UI (vendored, Apache-2.0) on the agent's own /openapi.json, by relative paths so it
// works under any prefix (FC's URL). No validator badge: it would send the document to validator.swagger.io.
window.addEventListener("load", () => {
  window.SwaggerUIBundle({
    url: "openapi.json",
    dom_id: "#contract",
    validatorUrl: null,
    deepLinking: true,
    tryItOutEnabled: false,
    defaultModelsExpandDepth: 0,
  });
});
