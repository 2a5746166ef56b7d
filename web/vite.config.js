import { defineConfig } from "vite";

// The FastAPI app serves dist/; in development, Vite proxies the API to it.
export default defineConfig({
  build: { outDir: "dist", emptyOutDir: true, sourcemap: true },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8000",
      "/blobs": "http://127.0.0.1:8000",
    },
  },
});
