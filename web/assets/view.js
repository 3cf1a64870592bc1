// filled by the run page
