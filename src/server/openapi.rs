//! The API's description: `GET /openapi.json` (an OpenAPI 3.1 document,
//! kept by hand in `openapi.json` next to this file; a test compares it
//! with the router and the request and reply types) and `GET /docs`, a
//! page that renders it with Swagger UI loaded from a CDN.

pub const OPENAPI: &str = include_str!("openapi.json");

pub const DOCS: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llmproxy API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
</body>
</html>
"##;
