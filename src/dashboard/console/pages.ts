import { auditPage } from "./audit-page.js";
import { databasePage } from "./database-page.js";
import { failuresPage } from "./failures-page.js";
import { jobsPage } from "./jobs-page.js";
import type { RegisteredPage } from "./page.js";
import { schedulesPage } from "./schedules-page.js";
import { searchPage } from "./search-page.js";

/** The console's pages, in nav order. Add a page with one line. */
export const consolePages: RegisteredPage[] = [searchPage, jobsPage, failuresPage, schedulesPage, databasePage, auditPage];
