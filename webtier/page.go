package webtier

import "github.com/gofiber/fiber/v2"

// uploadPage is GET /: a form for the course contract and the JSON API.
const uploadPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>facefleet</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}form{margin:1em 0;padding:1em;border:1px solid #ccc}</style>
</head><body>
<h1>facefleet</h1>
<form method="post" action="/" enctype="multipart/form-data">
<p>Who is this? (answers <code>&lt;file&gt;:&lt;name&gt;</code>)</p>
<input type="file" name="inputFile" accept="image/*" required> <button>Upload</button>
</form>
<form method="post" action="/v1/recognize" enctype="multipart/form-data">
<p>Every face, as JSON</p>
<input type="file" name="image" accept="image/*" required> <button>Recognize</button>
</form>
<p>Enroll (needs an admin key from <code>facefleet keys create -role admin</code>):
<code>curl -H "Authorization: Bearer $KEY" -F image=@amy1.png http://HOST/v1/subjects/amy/faces</code> &middot;
<a href="/v1/status">status</a> &middot; <a href="/metrics">metrics</a></p>
</body></html>
`

func (s *Server) page(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderContentSecurityPolicy, s.auth.pageCSP)
	return c.SendString(uploadPage)
}
