throw new Error("@prisma/streams-local is left out of dbjobs' install: it serves only `prisma dev` and needs Node >= 22. dbjobs never runs `prisma dev`.");
