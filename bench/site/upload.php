<?php
// Workload "upload": reads the whole request body and answers with its length.
header('Content-Type: text/plain');
echo strlen(file_get_contents('php://input')), "\n";
